//! Wire and stored types of the security gateway (services, access rights, groups).

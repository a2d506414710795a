-- The tree's frontier at each stored head: the roots of its complete subtrees, largest
-- first, as concatenated 32-byte hashes (one per one bit of `size`). With it, the first
-- seal after a restart goes on from the last head, reading only the records appended since,
-- instead of every leaf of the log. NULL for heads stored before this column existed.
ALTER TABLE ledger_heads ADD COLUMN frontier BYTEA;

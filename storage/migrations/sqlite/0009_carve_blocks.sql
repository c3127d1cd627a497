-- File carves kept in the database, so that every node takes any block of any carve (osquery
-- behind a round-robin balancer sends each block to whichever node). A carve's blocks are rows
-- of carve_blocks; `blocks_received` counts the distinct ones, and the transaction that stores
-- the last of them marks the carve complete. `expired` carves have had their blocks deleted.
ALTER TABLE carves ADD COLUMN blocks_received INTEGER NOT NULL DEFAULT 0;
ALTER TABLE carves ADD COLUMN max_block INTEGER NOT NULL DEFAULT -1;
ALTER TABLE carves ADD COLUMN expired INTEGER NOT NULL DEFAULT 0;
CREATE INDEX carves_open ON carves (host_id, completed_at);
CREATE INDEX carves_age ON carves (expired, created_at);

CREATE TABLE carve_blocks (
    carve_id INTEGER NOT NULL,
    block_id INTEGER NOT NULL,
    data     BLOB    NOT NULL,
    PRIMARY KEY (carve_id, block_id)
) WITHOUT ROWID;

-- File carves kept in the database; the MySQL side of sqlite/0009_carve_blocks.sql, which
-- explains the columns. A block is one row, so max_allowed_packet bounds the block size.
ALTER TABLE carves
    ADD COLUMN blocks_received BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN max_block BIGINT NOT NULL DEFAULT -1,
    ADD COLUMN expired TINYINT(1) NOT NULL DEFAULT 0,
    ADD KEY carves_open (host_id, completed_at),
    ADD KEY carves_age (expired, created_at);

CREATE TABLE carve_blocks (
    carve_id BIGINT UNSIGNED NOT NULL,
    block_id BIGINT NOT NULL,
    data     LONGBLOB NOT NULL,
    PRIMARY KEY (carve_id, block_id)
) ENGINE = InnoDB;

-- One row that /readyz rewrites: proves the database file can still be written (a full disk
-- fails it), not only read.
CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);

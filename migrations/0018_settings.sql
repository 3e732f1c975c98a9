-- Values every instance on this database shares, made once (the stream-token key).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

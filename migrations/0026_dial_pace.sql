-- Dial pacing shared by every dialler of the store: one GCRA row per carrier account, its
-- theoretical arrival time in microseconds (lifecycle::pace).
CREATE TABLE dial_pace (
    carrier TEXT PRIMARY KEY,
    tat     INTEGER NOT NULL
);

-- The call's spending cap in USD (NULL: none): the AI says goodbye and hangs up at it.
ALTER TABLE calls ADD COLUMN max_cost_usd REAL;

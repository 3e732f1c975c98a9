-- A call's own tools (`tools`: a JSON array of {name, description, parameters, url}, checked
-- when the call was created), offered to its model and POSTed to when called.
ALTER TABLE calls ADD COLUMN tools TEXT;

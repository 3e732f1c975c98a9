-- Where a call's AI may hand the caller over (`transfer_to`: a JSON array of {to, description},
-- checked when the call was created) and where it did (`transferred_to`).
ALTER TABLE calls ADD COLUMN transfer_to TEXT;
ALTER TABLE calls ADD COLUMN transferred_to TEXT;

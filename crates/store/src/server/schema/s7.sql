-- Server schema 7 (issue 13): staff of a county chapter, and legal appeals read by the legal
-- advisory group.
-- `accounts.chapter`: the chapter (政协组织) of staff of a county chapter, who read and write only
-- its groups' records and its directory entries; NULL for everyone else (city staff read all).
-- `change_log.also`: a second group that reads the entry (the legal advisory group, for a legal
-- appeal recorded by another group; `sanjin_core::rules::also_read_by`); NULL for most entries.
-- Existing rows keep NULL in both: accounts keep working as they did.
ALTER TABLE accounts ADD COLUMN chapter TEXT;
ALTER TABLE change_log ADD COLUMN also TEXT;

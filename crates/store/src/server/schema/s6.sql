-- Server schema 6 (issue 12): the server's X25519 keys that bundles are sealed to — its own
-- (owner '', epoch 0) and one per activity group and epoch (a revocation in a group starts its
-- next epoch). Secrets never leave the server except a group's to that group's devices (and
-- every group's to office devices) over their authenticated channel (`POST /v1/trust`).
-- Named apart from the device tables' `box_keys` (device schema 5: a device's group secrets),
-- which the server's file holds too, being a device store underneath.
CREATE TABLE server_box_keys (
    owner      TEXT NOT NULL,    -- '' the server's own key; else the activity group's id
    epoch      INTEGER NOT NULL, -- 0 for the server's; 1, 2, … for a group's
    secret     BLOB NOT NULL,    -- the X25519 static secret (32 bytes)
    created_at INTEGER NOT NULL, -- ms
    PRIMARY KEY (owner, epoch)
) WITHOUT ROWID;

-- Firmware updates over the air (agri node update): the last update outcome a node reported on
-- its status topic ('ok', 'rolled back', 'refused', 'failed', 'pending' while it has not
-- answered) and when; nodes.firmware_version (0004) holds the version it runs.
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS ota_state text;
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS ota_at timestamptz;

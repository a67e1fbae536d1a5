-- Sky and air data (issue 13): field blocks, nodes placed in blocks, imagery sources, STAC items.

-- A farm's outline (GeoJSON Polygon or MultiPolygon, WGS 84); blocks must lie inside it when set.
ALTER TABLE farms ADD COLUMN IF NOT EXISTS boundary jsonb;  -- also added by 0004_api (same type)

CREATE TABLE blocks (
    farm_id     text NOT NULL REFERENCES farms (id) ON DELETE CASCADE,
    -- 28 characters leave room for the per-source pseudo node ids 'sat-<block>' / 'uav-<block>'.
    block_id    text NOT NULL CHECK (block_id ~ '^[a-z0-9-]{1,28}$'),
    name        text NOT NULL,
    kind        text NOT NULL DEFAULT 'field'
                CHECK (kind IN ('field', 'orchard_block', 'tea_terrace', 'pond', 'barn', 'other')),
    geometry    jsonb NOT NULL,             -- GeoJSON Polygon / MultiPolygon, WGS 84 lon/lat
    area_m2     double precision NOT NULL CHECK (area_m2 > 0),
    west        double precision NOT NULL,  -- bounding box (degrees), for scene searches
    south       double precision NOT NULL,
    east        double precision NOT NULL,
    north       double precision NOT NULL,
    props       jsonb NOT NULL DEFAULT '{}',  -- the feature's other properties, as imported
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id, block_id)
);

-- A node may be placed in a block of its farm. Its `source` says what it is: a ground sensor node,
-- or the pseudo node that carries a block's satellite or drone statistics as ordinary series, so
-- queries, rollups, exports, QC and anomaly scoring treat imagery like sensor data.
ALTER TABLE nodes ADD COLUMN block_id text;
ALTER TABLE nodes ADD CONSTRAINT nodes_block_fk FOREIGN KEY (farm_id, block_id)
    REFERENCES blocks (farm_id, block_id) ON DELETE SET NULL (block_id);
ALTER TABLE nodes ADD COLUMN source text NOT NULL DEFAULT 'sensor'
    CHECK (source IN ('sensor', 'satellite', 'drone'));
CREATE INDEX nodes_block ON nodes (farm_id, block_id) WHERE block_id IS NOT NULL;

-- Imagery catalog: one row per STAC item (scene or drone flight) with the item itself.
CREATE TABLE sky_items (
    id          serial PRIMARY KEY,
    collection  text NOT NULL DEFAULT '',
    item_id     text NOT NULL,
    source      text NOT NULL CHECK (source IN ('satellite', 'drone')),
    datetime    timestamptz NOT NULL,
    cloud_cover double precision,
    processing_baseline text,
    west        double precision,
    south       double precision,
    east        double precision,
    north       double precision,
    href        text,                       -- where the item JSON was read from or written to
    stac        jsonb NOT NULL,             -- the STAC item (assets' hrefs as stored)
    imported_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (collection, item_id)
);
CREATE INDEX sky_items_time ON sky_items (datetime DESC);

-- What processing an item did for each block: stored, or skipped and why (too cloudy, outside).
CREATE TABLE sky_block_runs (
    item_id     int NOT NULL REFERENCES sky_items (id) ON DELETE CASCADE,
    farm_id     text NOT NULL,
    block_id    text NOT NULL,
    status      text NOT NULL CHECK (status IN ('stored', 'low_valid', 'outside')),
    valid_frac  double precision,
    n_pixels    int,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_id, farm_id, block_id),
    FOREIGN KEY (farm_id, block_id) REFERENCES blocks (farm_id, block_id) ON DELETE CASCADE
);

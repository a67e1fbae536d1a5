-- Sky (issue 13): the latest colour-mapped index image per farm, rendered when imagery is
-- imported, so the API and dashboard serve a map overlay without raster libraries of their own.
CREATE TABLE sky_overlays (
    farm_id     text NOT NULL REFERENCES farms (id) ON DELETE CASCADE,
    index       text NOT NULL CHECK (index IN ('ndvi', 'ndre', 'ndwi', 'evi')),
    source      text NOT NULL CHECK (source IN ('satellite', 'drone')),
    item_id     int NOT NULL REFERENCES sky_items (id) ON DELETE CASCADE,
    acquired_at timestamptz NOT NULL,
    png         bytea NOT NULL,
    west        double precision NOT NULL,   -- WGS 84 bounds of the PNG's outer edges
    south       double precision NOT NULL,
    east        double precision NOT NULL,
    north       double precision NOT NULL,
    vmin        double precision NOT NULL,   -- index values at the two ends of the colour ramp
    vmax        double precision NOT NULL,
    rendered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id, index, source)
);

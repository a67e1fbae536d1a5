"""Host side of the sensor nodes: node config schema, sensor profiles, provisioning, emulation."""

# Networking: a minimal MQTT 3.1.1 client (mqtt) and the uplink
# policy that ties the spool to PUBACKs (uplink).

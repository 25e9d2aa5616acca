"""Local emulator of the PAI and DataArts Fabric model registries (never imported by the runtime path)."""

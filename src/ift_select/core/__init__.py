"""What every stage shares: typed params, paths, atomic io, errors, devices, the stage runner."""

"""Selection arms as data: AlpaGasus, CaR, random, full (the arms and select stages)."""

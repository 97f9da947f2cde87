"""Islands: each a Ray actor with its own population, archive and MAP-Elites grid.

`population` (the sub-population and archive), `features` (the grid's descriptors),
`migration` (topology and who sends to whom), `island` (one island's loop), `host` (the
actor that holds one or more islands) and `group` (the fleet: creation, peers, health,
restarts and stopping, what the run's controller calls).
"""

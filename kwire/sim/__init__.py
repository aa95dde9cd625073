"""kwire.sim: a deterministic simulator of a kwire quorum (product code, not a test fake).

N nodes, each the real consensus core (kwire.raft.core.RaftCore) and the real controller
(kwire.controller.controller.QuorumController) over an in-memory log that loses what was
not flushed (memory_log), on a seeded virtual network (network) and clock (events):
delay, drop, reorder, duplicate, partition and heal, crash and restart (node, cluster).
After every step the safety invariants are checked (invariants); named scenarios each
state theirs (scenarios); `python -m kwire.sim --seeds N` runs them over seeds and prints
a replay command for every failing one (runner, __main__).
"""

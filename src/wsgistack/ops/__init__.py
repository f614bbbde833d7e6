"""Operating running stacks: :mod:`.control` (status, reload, drain of a node), :mod:`.balance`
(HAProxy's runtime), :mod:`.rollout` (one node at a time), :mod:`.listener` (the ops listener:
/metrics, /status)."""

"""The app: its interpreter (:mod:`.interpreter`), who may run it (:mod:`.access`) and what it
is (:mod:`.detect`, which imports it in a subprocess as the user it will run as)."""

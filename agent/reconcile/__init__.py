"""One pass, observe → plan → apply (run.py): context, discover and tag following feed observe; plan is
pure; apply pulls through each entry's target (targets.py; whose credentials: pulls.py) and updates it,
with its sharers (sharers.py); seen.py records what the pass saw."""

"""One pass, observe → plan → apply: context, discover and tag following feed observe; plan is pure;
apply pulls (pulls.py) and updates each entry through its target (targets.py)."""

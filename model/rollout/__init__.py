"""The rollout: live evidence on a challenger beside the champion, and the rule that promotes or aborts it (pure:
the callers read the observations from the database and act on the decision)."""

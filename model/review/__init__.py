"""The review: the queue's orders, suspect labels and the reviewers' decisions."""

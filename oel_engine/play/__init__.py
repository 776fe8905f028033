"""Playing games: turn prompts, policies, batched rollout, trajectories, who plays on the Play screen."""

"""A movement policy with a bug, for the test that bugs keep their traceback."""

from ffn.inference.policies import movement


class BuggyPolicy(movement.FaceMaxMovementPolicy):
  """FaceMaxMovementPolicy that fails as a bug would, after its first FOV."""

  def update(self, prob_map, position):
    raise ValueError('a bug in the movement policy')

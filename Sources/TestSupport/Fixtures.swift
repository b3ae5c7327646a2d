import Checkpoints
public enum Fixtures {}

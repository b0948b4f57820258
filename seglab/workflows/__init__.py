"""What each command does, from a resolved config to its result: train, evaluate, predict,
export, prune; and `build`, where a run spec becomes objects. Commands (`seglab.cli`) call
one function here; nothing below this layer imports it."""

VERSION = "fixture-1"

# A helper module: no collector class at all.
def double(x):
    return 2 * x

# A helper module with an import-time side effect: it must run once.
import builtins

builtins._pythond_helper_loads = getattr(builtins, '_pythond_helper_loads', 0) + 1

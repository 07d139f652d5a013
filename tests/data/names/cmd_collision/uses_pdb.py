# An ordinary script that imports pdb (which imports the standard `cmd`).
import cmd
import pdb

from datakit_framework import DataKitFramework


class UsesPdb(DataKitFramework):
    name = 'uses_pdb'

    def run(self):
        self.feed_logging(source='uses_pdb', message='ok', cmd_file=str(getattr(cmd, '__file__', '')),
                          pdb_is_a_cmd=isinstance(pdb.Pdb, type) and issubclass(pdb.Pdb, cmd.Cmd))

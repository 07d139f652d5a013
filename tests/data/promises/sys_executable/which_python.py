# Reports the interpreter a script would start with subprocess, and what that
# interpreter says its prefix is.
import subprocess
import sys

from datakit_framework import DataKitFramework


class WhichPython(DataKitFramework):
    name = 'which_python'
    interval = 3600

    def run(self):
        try:
            out = subprocess.run([sys.executable, '-c', 'import sys; print(sys.prefix)'],
                                 capture_output=True, text=True, timeout=30)
            prefix = out.stdout.strip() or ('exit %s: %s' % (out.returncode, out.stderr.strip()))
        except Exception as e:
            prefix = '%s: %s' % (type(e).__name__, e)
        self.feed_logging(source='which_python', message='python', executable=str(sys.executable),
                          child_prefix=prefix)

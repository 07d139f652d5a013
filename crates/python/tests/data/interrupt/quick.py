from datakit_framework import DataKitFramework

class Quick(DataKitFramework):
    def run(self):
        return sum(str(i).count('1') for i in range(2000))

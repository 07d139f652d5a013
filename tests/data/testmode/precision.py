from datakit_framework import DataKitFramework


class P(DataKitFramework):
    def run(self):
        self.report({'M': [{'measurement': 'm', 'fields': {'v': 1}, 'time': 1716544492}], 'precision': 's'})
        self.report({'L': [{'measurement': 'l', 'fields': {'message': 'x'}, 'time': 1716544492000}]})

# report() points whose keys are not the interned literals (built at run
# time), or come with a key pythond does not read, next to plain ones: each
# gives the same line. Also one big report() (read and encoded in chunks,
# two threads) whose points must arrive in order.
from datakit_framework import DataKitFramework


def key(*parts):
    return ''.join(parts)


class Keys(DataKitFramework):
    interval = 60

    def run(self):
        plain = {'measurement': 'k', 'tags': {'t': 'a'}, 'fields': {'v': 1}, 'time': 1700000000}
        built = {key('meas', 'urement'): 'k', key('ta', 'gs'): {'t': 'a'},
                 key('fie', 'lds'): {'v': 1}, key('ti', 'me'): 1700000000}
        extra = {'measurement': 'k', 'tags': {'t': 'a'}, 'fields': {'v': 1}, 'time': 1700000000,
                 'other': [1, 2]}
        self.report({'M': [plain, built, extra], 'precision': 's'})
        big = [{'measurement': 'big', 'fields': {'i': i, 'f': i / 4}} for i in range(20000)]
        big[7777] = {'measurement': 'big', 'fields': {'i': 7777, 'f': 7777 / 4, 'x': 2 ** 63}}
        self.report({'M': big})

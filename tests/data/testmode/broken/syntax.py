def oops(:

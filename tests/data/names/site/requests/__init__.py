# A stand-in for the `requests` package, installed into a venv the test
# creates: what matters is that it is an installed package named `requests`.
class Session(object):
    pass

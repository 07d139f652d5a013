# A package installed only in the test's virtualenv.

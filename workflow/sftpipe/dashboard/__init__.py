"""`sft dashboard`: a local, read-only web view of runs, comparisons and converted data.

Layer between report and cli: it may import every layer but cli. It reads artifacts/ and writes nothing.
"""

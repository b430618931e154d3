"""The command families of the ``adainrt`` CLI; adainrt/cli.py assembles them into one group."""

"""The one exception type for bad user input, so every front end can report it the same way."""


class UserError(Exception):
    """A problem with what the user gave us.

    The message names the file, the place in it and the fix. Front ends (the command line, the
    JSON API, the pages) show it as one line and never as a traceback.
    """

    # Whether running the job again, unchanged, may succeed (a store that comes back, a file put in
    # place): a job page offers Resume only then. Inputs that can never fit say False.
    retry_helps = True

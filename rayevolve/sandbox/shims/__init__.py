"""Stand-in packages the judge can import (see ``openevolve/``)."""

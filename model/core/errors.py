"""Domain errors. Domain code raises these; the API maps them to HTTP status codes once."""


class SproutError(Exception):
    """Base class of every error Sprout reports to a user."""


class InvalidImageError(SproutError):
    """The bytes are not a decodable, supported image (HTTP 400)."""


class ImageTooLargeError(SproutError):
    """Upload or pixel count over the limit (HTTP 413)."""


class UnsupportedMediaError(SproutError):
    """A file type Sprout refuses, e.g. SVG, HTML or PDF (HTTP 415)."""


class InvalidLabelError(SproutError):
    """A label that is empty or not safe as a storage path segment (HTTP 422)."""


class InvalidCursorError(SproutError):
    """A page cursor that is not one Sprout wrote, or one of another order or status (HTTP 422)."""


class NotFoundError(SproutError):
    """An unknown sample, model version or object (HTTP 404)."""


class ConflictError(SproutError):
    """Duplicate upload or already-reviewed sample (HTTP 409)."""


class ForbiddenError(SproutError):
    """An action on something that is not the caller's, e.g. undoing another reviewer's decision (HTTP 403)."""


class QueueFullError(SproutError):
    """The review queue holds as many pending samples as allowed (HTTP 429)."""


class ArtifactRejectedError(SproutError):
    """A model artifact that Sprout did not produce, or whose sha256 differs from the one recorded (not served)."""


class NoChampionError(SproutError):
    """No model has been promoted yet (HTTP 503)."""


class StorageUnavailableError(SproutError):
    """The object store cannot be reached (HTTP 503)."""


class NotEnoughDataError(SproutError):
    """Too few approved samples, or fewer than two labels, to train (HTTP 409)."""


class UnknownBackboneError(SproutError):
    """A backbone name that is not in the registry."""


class RegistryUnavailableError(SproutError):
    """The MLflow tracking/registry server cannot be reached (HTTP 503)."""


class OrchestratorUnavailableError(SproutError):
    """Airflow is not configured or cannot be reached (HTTP 503)."""


class ConfigurationError(SproutError):
    """A setting or login the command needs is missing, or the service it names refuses it."""

using RsCapRet.Queries;

namespace RsCapRet.Web;

/// <summary>
/// The bounds on what one request, and the host as a whole, may make the server do: model work per request
/// (<see cref="ModelWorkLimits"/>), requests running the model at once (queued beyond the one at work; more get 503 with
/// Retry-After), uploaded images' bands, and the brake on wrong basic-auth passwords.
/// </summary>
public sealed record HostLimits
{
    public const string ModelQueueVariable = "RSCAPRET_MODEL_QUEUE";
    public const string MaxUploadBandsVariable = "RSCAPRET_MAX_UPLOAD_BANDS";

    public ModelWorkLimits Work { get; init; } = new();
    /// <summary>Requests that run the model (land use, image search, changes toward a text) running or waiting at once; beyond: 503.</summary>
    public int ModelQueue { get; init; } = 4;
    /// <summary>What a 503 for a full model queue says to wait.</summary>
    public int BusyRetryAfterSeconds { get; init; } = 2;
    /// <summary>Bands an uploaded image may declare (RGB + alpha).</summary>
    public int MaxUploadBands { get; init; } = 4;
    /// <summary>The brake on wrong passwords (with basic auth on).</summary>
    public AuthThrottleOptions Auth { get; init; } = new();

    /// <summary>RSCAPRET_MAX_LABELS, RSCAPRET_MAX_PROMPT_TOKENS, RSCAPRET_MAX_REQUEST_TOKENS, RSCAPRET_MODEL_QUEUE, RSCAPRET_MAX_UPLOAD_BANDS.</summary>
    public static HostLimits FromEnvironment()
    {
        var web = WebOptions.FromEnvironment();
        return new HostLimits { Work = ModelWorkLimits.FromEnvironment(), ModelQueue = web.ModelQueue, MaxUploadBands = web.MaxUploadBands };
    }
}

/// <summary>
/// Counts the requests that run the model (running or waiting for it): at most <see cref="Capacity"/> at once; one more
/// is refused at once with <see cref="QueryQueueFullException"/> (503 with Retry-After) instead of piling up behind the
/// model. A request that is cancelled while it waits leaves the queue at once (the model lock is awaited with its token).
/// </summary>
public sealed class ModelWorkGate(int capacity, int retryAfterSeconds)
{
    private int _inFlight;
    private long _started, _refused;

    public int Capacity => capacity;
    /// <summary>Requests running or waiting now.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);
    /// <summary>Requests whose model work began (the model was theirs), and requests refused as over the capacity.</summary>
    public long Started => Interlocked.Read(ref _started);
    public long Refused => Interlocked.Read(ref _refused);

    public async Task<T> RunAsync<T>(Func<Action, Task<T>> work)
    {
        if (Interlocked.Increment(ref _inFlight) > capacity)
        {
            Interlocked.Decrement(ref _inFlight);
            Interlocked.Increment(ref _refused);
            throw new QueryQueueFullException(retryAfterSeconds);
        }
        try { return await work(() => Interlocked.Increment(ref _started)); }
        finally { Interlocked.Decrement(ref _inFlight); }
    }
}

using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace RsCapRet.Web;

/// <summary>How wrong basic-auth passwords are braked: free failures per client, then a block that doubles with each further one.</summary>
public sealed record AuthThrottleOptions
{
    /// <summary>Wrong passwords a client may send before it is blocked.</summary>
    public int FreeFailures { get; init; } = 5;
    /// <summary>The first block; each further failure doubles it, up to <see cref="MaxDelay"/>.</summary>
    public TimeSpan FirstDelay { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>A client with no failure for this long starts afresh.</summary>
    public TimeSpan Forget { get; init; } = TimeSpan.FromMinutes(15);
    /// <summary>Clients remembered at most (the oldest are forgotten first beyond it).</summary>
    public int MaxClients { get; init; } = 10_000;
}

/// <summary>
/// The brake on guessing the basic-auth password: per client address, after <see cref="AuthThrottleOptions.FreeFailures"/>
/// wrong passwords every request is answered 429 with Retry-After — without looking at its credentials — for a delay
/// that doubles with each further failure (1 s, 2 s, 4 s ... 5 min). A right password ends the client's count. One log
/// line per block.
/// </summary>
public sealed class AuthThrottle(AuthThrottleOptions options, ILogger? log = null, TimeProvider? time = null)
{
    private sealed class Client
    {
        public int Failures;
        public DateTimeOffset BlockedUntil;
        public DateTimeOffset LastFailure;
    }

    private readonly ConcurrentDictionary<string, Client> _clients = new();
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public AuthThrottleOptions Options => options;

    /// <summary>How long <paramref name="client"/> is still blocked; null when it may try.</summary>
    public TimeSpan? Blocked(string client)
    {
        if (!_clients.TryGetValue(client, out var c)) return null;
        lock (c)
        {
            var left = c.BlockedUntil - _time.GetUtcNow();
            return left > TimeSpan.Zero ? left : null;
        }
    }

    public void Succeeded(string client) => _clients.TryRemove(client, out _);

    /// <summary>Counts a wrong password; returns the block it starts (null while failures are still free).</summary>
    public TimeSpan? Failed(string client)
    {
        var now = _time.GetUtcNow();
        if (_clients.Count >= options.MaxClients) Prune(now);
        var c = _clients.GetOrAdd(client, _ => new Client());
        TimeSpan delay;
        int failures;
        lock (c)
        {
            if (now - c.LastFailure > options.Forget) c.Failures = 0;
            c.LastFailure = now;
            failures = ++c.Failures;
            if (failures < options.FreeFailures) return null;
            var doublings = Math.Min(failures - options.FreeFailures, 30);
            delay = TimeSpan.FromTicks((long)Math.Min(options.MaxDelay.Ticks, options.FirstDelay.Ticks * Math.Pow(2, doublings)));
            c.BlockedUntil = now + delay;
        }
        log?.LogWarning("basic auth: client {Client} blocked for {Seconds:0} s after {Failures} wrong passwords", client, Math.Ceiling(delay.TotalSeconds), failures);
        return delay;
    }

    private void Prune(DateTimeOffset now)
    {
        foreach (var (key, c) in _clients)
            if (now - c.LastFailure > options.Forget && c.BlockedUntil <= now) _clients.TryRemove(key, out _);
        // Still full (many addresses at once): forget the longest-quiet half.
        if (_clients.Count < options.MaxClients) return;
        foreach (var (key, _) in _clients.OrderBy(kv => kv.Value.LastFailure).Take(_clients.Count / 2).ToList()) _clients.TryRemove(key, out _);
    }
}

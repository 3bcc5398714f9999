using Hangfire.AspNetCore;
using Hangfire.Logging;
using Microsoft.Extensions.Logging;

namespace RsCapRet.Jobs;

/// <summary>
/// Hangfire's log provider is process-wide, but the host's logger factory dies with the host: after one host is
/// disposed, any later Hangfire client or server in the same process (a second host, a test) would throw
/// ObjectDisposedException from the stale provider. This one forwards to the host while it lives and stays
/// silent after.
/// </summary>
internal sealed class HostLogProvider(ILoggerFactory loggerFactory) : ILogProvider
{
    private readonly AspNetCoreLogProvider _inner = new(loggerFactory);

    public ILog GetLogger(string name)
    {
        try { return new GuardedLog(_inner.GetLogger(name)); }
        catch (ObjectDisposedException) { return new GuardedLog(null); }
    }

    private sealed class GuardedLog(ILog? inner) : ILog
    {
        public bool Log(Hangfire.Logging.LogLevel logLevel, Func<string>? messageFunc, Exception? exception = null)
        {
            if (inner is null) return false;
            try { return inner.Log(logLevel, messageFunc!, exception!); }
            catch (ObjectDisposedException) { return false; }
        }
    }
}

using Hangfire;
using Hangfire.States;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Npgsql;
using RsCapRet.Inference;

namespace RsCapRet.Jobs;

/// <summary>How a job ended: its ingest report when it succeeded (null if the worker stored none), else why it did not.</summary>
public sealed record JobOutcome(string Path, string JobId, bool Succeeded, IngestJobReport? Report, string? Failure);

/// <summary>
/// A Hangfire server in this process like `rscapret worker`'s (storage, queues, job classes) that uses a model the
/// caller already loaded: the demo's, `index-archive --wait`'s and `models reindex`'s jobs run in the command's process
/// while the dashboard shows them. A worker elsewhere on the same queues may take some of the jobs; waiting works
/// either way. Queue the jobs, start, wait on each; on a stop, delete the jobs that have not ended, then dispose.
/// </summary>
public sealed class InProcessWorker : IDisposable
{
    /// <summary>The server is named "demo:MACHINE:PID" on the dashboard's Servers page.</summary>
    public const string ServerNamePrefix = "demo:";

    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(500);
    private static readonly string[] Unfinished = [EnqueuedState.StateName, ScheduledState.StateName, ProcessingState.StateName, AwaitingState.StateName];

    private readonly IHost _host;
    private readonly IBackgroundJobClient _client;
    private readonly JobStorage _storage;

    public InProcessWorker(string connectionString, ModelCache models)
    {
        var builder = Host.CreateApplicationBuilder();
        // Hangfire's start/stop chatter stays out of the command's output (job failures are reported per job); errors go to stderr.
        builder.Logging.SetMinimumLevel(LogLevel.Error);
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        // The command handles Ctrl-C and SIGTERM itself; the default console lifetime would swallow them.
        builder.Services.AddSingleton<IHostLifetime, CommandLifetime>();
        builder.Services.AddSingleton(models);   // the command's --device, and no second copy of the model
        builder.Services.AddRsCapRetJobs(connectionString)
            .AddRsCapRetWorker(JobQueues.All, 1, $"{ServerNamePrefix}{Environment.MachineName}:{Environment.ProcessId}");
        _host = builder.Build();
        _client = _host.Services.GetRequiredService<IBackgroundJobClient>();
        _storage = _host.Services.GetRequiredService<JobStorage>();
    }

    public string EnqueueIngest(string path, string modelDirectory, IngestJobOptions options) =>
        _client.Enqueue<IngestSceneJob>(j => j.RunAsync(path, modelDirectory, options, null, CancellationToken.None));

    public string EnqueueScan(string root, string pattern, string modelDirectory, IngestJobOptions options) =>
        _client.Enqueue<IndexArchiveJob>(j => j.RunAsync(root, pattern, modelDirectory, options, null, CancellationToken.None));

    public Task StartAsync(CancellationToken ct) => _host.StartAsync(ct);

    /// <summary>Stops the server; a job still running is cancelled (an ingest releases its scene for the next run).</summary>
    public Task StopAsync() => _host.StopAsync(CancellationToken.None);

    /// <summary>
    /// Polls the job's state until it has ended. <paramref name="retrying"/> hears each new reason of a transient failure
    /// that Hangfire's retry filter runs again later (database, scene held by another process); <paramref name="progress"/>,
    /// when given, the running job's stored progress.
    /// </summary>
    public async Task<JobOutcome> WaitAsync(string path, string id, Func<string?, Task> retrying, Action<ProgressValue>? progress, CancellationToken ct)
    {
        string? retryReported = null;
        while (true)
        {
            using (var connection = _storage.GetConnection())
            {
                var state = connection.GetStateData(id);
                if (state is null)
                    return new JobOutcome(path, id, false, null, "the job is no longer in the job storage");
                var name = state.Name;
                if (name == SucceededState.StateName)
                    return new JobOutcome(path, id, true, IngestSceneJob.ReadReport(connection, id), null);   // none from a worker of an earlier version
                if (name == FailedState.StateName)
                    return new JobOutcome(path, id, false, null, state.Data.TryGetValue("ExceptionMessage", out var message) ? message : state.Reason);
                if (name == DeletedState.StateName)
                    return new JobOutcome(path, id, false, null, "the job was deleted" + (state.Reason is { } why ? $" ({why})" : ""));
                if (name == ScheduledState.StateName && state.Reason != retryReported)
                {
                    retryReported = state.Reason;
                    await retrying(state.Reason);
                }
                else if (name == ProcessingState.StateName && progress is not null && JobProgress.Read(connection, id) is { } p)
                    progress(p);
            }
            await Task.Delay(Poll, ct);
        }
    }

    /// <summary>The report a succeeded scan job kept; null when it has none.</summary>
    public ScanJobReport? ReadScanReport(string id)
    {
        using var connection = _storage.GetConnection();
        return IndexArchiveJob.ReadReport(connection, id);
    }

    /// <summary>Deletes the jobs that have not ended (from the state seen, so one that just ended keeps its record).</summary>
    public void DeleteUnfinished(IEnumerable<string> ids, string reason)
    {
        foreach (var id in ids)
        {
            try
            {
                using var connection = _storage.GetConnection();
                if (connection.GetStateData(id)?.Name is { } state && Unfinished.Contains(state))
                    _client.ChangeState(id, new DeletedState { Reason = reason }, state);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException)
            {
                // The database is out of reach: the job stays queued and any worker finishes it (ingestion is idempotent).
            }
        }
    }

    public void Dispose() => _host.Dispose();

    /// <summary>A host lifetime that leaves signals to the command.</summary>
    private sealed class CommandLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}

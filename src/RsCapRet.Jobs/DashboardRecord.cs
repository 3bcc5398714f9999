using System.Linq.Expressions;
using Hangfire;
using Hangfire.Common;
using Hangfire.States;

namespace RsCapRet.Jobs;

/// <summary>
/// Work a command runs in its own process (`rscapret ingest`) recorded as a Hangfire job, so the dashboard lists it
/// beside the workers' jobs: created straight in the Processing state under the server name "cli:MACHINE:PID" (in no
/// queue, so no worker takes it), with the same progress bar, then moved to Succeeded or Failed with the command's
/// result. Recording is best effort: a job storage out of reach never fails the work itself.
/// </summary>
public sealed class DashboardRecord
{
    public const string ServerPrefix = "cli:";
    private readonly JobStorage _storage;
    private readonly BackgroundJobClient _client;
    private readonly DateTime _started = DateTime.UtcNow;
    private readonly JobProgress _progress;
    private readonly List<string> _warnings = [];

    public string JobId { get; }

    private DashboardRecord(JobStorage storage, BackgroundJobClient client, string jobId)
    {
        (_storage, _client, JobId) = (storage, client, jobId);
        _progress = new JobProgress(p => Try(() =>
        {
            using var connection = _storage.GetConnection();
            JobPageView.SetParameter(connection, JobId, JobProgress.Parameter, p);
        }));
    }

    /// <summary>Records the call as a processing job; null (and a warning) when the job storage cannot be reached.</summary>
    public static DashboardRecord? TryStart<T>(JobStorage? storage, Expression<Func<T, Task>> call, TextWriter? warnings = null)
    {
        if (storage is null) return null;
        try
        {
            var client = new BackgroundJobClient(storage);
            var id = client.Create(Job.FromExpression(call), new CommandProcessingState());
            return new DashboardRecord(storage, client, id);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            warnings?.WriteLine($"warning: the run is not recorded on the dashboard: {e.Message}");
            return null;
        }
    }

    /// <summary>
    /// The job storage for records, serialised as the hosts serialise jobs; without the retry filter, which would turn
    /// a recorded failure into a retry that a worker runs.
    /// </summary>
    public static JobStorage? TryStorage(string connectionString, TextWriter? warnings = null)
    {
        try
        {
            GlobalConfiguration.Configuration.SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
                .UseSimpleAssemblyNameTypeSerializer().UseRecommendedSerializerSettings();
            return HangfireSetup.CreateStorage(connectionString);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            warnings?.WriteLine($"warning: runs are not recorded on the dashboard: {e.Message}");
            return null;
        }
    }

    /// <summary>Progress as the dashboard's bar shows it (at most once a second unless <paramref name="force"/>).</summary>
    public void Report(long done, long total, string unit, string? text = null, bool force = false) => _progress.Report(done, total, unit, text, force);

    /// <summary>A warning the command printed (e.g. a scene far coarser than the model's range), listed on the job's page.</summary>
    public void Warn(string warning) => Try(() =>
    {
        _warnings.Add(warning);
        using var connection = _storage.GetConnection();
        JobPageView.SetParameter(connection, JobId, JobPageView.WarningsParameter, _warnings.ToArray());
    });

    public void Succeed(string result) =>
        Try(() => _client.ChangeState(JobId, new SucceededState(result, 0, (long)(DateTime.UtcNow - _started).TotalMilliseconds), ProcessingState.StateName));

    public void Fail(Exception error) => Try(() => _client.ChangeState(JobId, new FailedState(error), ProcessingState.StateName));

    private static void Try(Action action)
    {
        try { action(); }
        catch (Exception e) when (e is not OutOfMemoryException) { }
    }
}

/// <summary>
/// The Processing state as Hangfire's own (whose constructor is internal) stores it: same name and data, so the
/// dashboard lists the command's run among the processing jobs, on the command's "server".
/// </summary>
internal sealed class CommandProcessingState : IState
{
    public string Name => ProcessingState.StateName;
    public string Reason => "run by a command in its own process";
    public bool IsFinal => false;
    public bool IgnoreJobLoadException => false;

    public Dictionary<string, string> SerializeData() => new()
    {
        ["StartedAt"] = JobHelper.SerializeDateTime(DateTime.UtcNow),
        ["ServerId"] = $"{DashboardRecord.ServerPrefix}{Environment.MachineName}:{Environment.ProcessId}",
        ["WorkerId"] = "command",
    };
}

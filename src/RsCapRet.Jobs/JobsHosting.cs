using Hangfire;
using Hangfire.AspNetCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Npgsql;
using RsCapRet.Inference;
using RsCapRet.Storage;

namespace RsCapRet.Jobs;

/// <summary>Service registration shared by the worker and the web host.</summary>
public static class JobsHosting
{
    /// <summary>Hangfire client/storage, the catalogue data source and the job classes' dependencies.</summary>
    public static IServiceCollection AddRsCapRetJobs(this IServiceCollection services, string connectionString)
    {
        services.AddSingleton<NpgsqlDataSource>(_ => RsCapRetDatabase.CreateDataSource(connectionString));
        services.TryAddSingleton<ModelCache>();   // a host that already holds a ModelCache (the demo's) keeps it
        services.AddTransient<IngestSceneJob>();
        services.AddTransient<IndexArchiveJob>();
        services.AddTransient<ActivateWhenReindexedJob>();
        services.AddTransient<TrainJob>();
        services.AddTransient<EvaluateJob>();
        // This host's own storage and job activator: AddHangfire would take the process-wide JobStorage.Current and
        // JobActivator.Current, which the host configured last in the process sets, so a second host in one process
        // (the demo's worker, tests) could enqueue into the other's database or build its jobs from the other's services.
        services.AddSingleton<JobStorage>(_ => HangfireSetup.CreateStorage(connectionString));
        services.AddSingleton<JobActivator>(provider => new AspNetCoreJobActivator(provider.GetRequiredService<IServiceScopeFactory>()));
        services.AddHangfire((provider, cfg) => cfg
            .UseRsCapRetStorage(provider.GetRequiredService<JobStorage>())
            .UseLogProvider(new HostLogProvider(provider.GetRequiredService<ILoggerFactory>())));
        return services;
    }

    /// <summary>A Hangfire server on <paramref name="queues"/> (e.g. only "model" on GPU machines).</summary>
    public static IServiceCollection AddRsCapRetWorker(this IServiceCollection services, IReadOnlyList<string> queues, int workers, string? name = null)
    {
        foreach (var q in queues)
            if (!JobQueues.All.Contains(q)) throw new ArgumentException($"Unknown queue '{q}' (known: {string.Join(", ", JobQueues.All)}).");
        services.AddHangfireServer(o =>
        {
            o.Queues = queues.ToArray();
            o.WorkerCount = workers;
            o.ServerName = name ?? $"{Environment.MachineName}:{Environment.ProcessId}";
            o.SchedulePollingInterval = TimeSpan.FromSeconds(5);
        });
        return services;
    }
}

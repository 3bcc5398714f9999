using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using RsCapRet.Jobs;
using RsCapRet.Web;

namespace RsCapRet.Cli;

/// <summary>
/// The jobs of a web host (`rscapret serve`), given to <see cref="RsCapRetWebHost.Build"/> by whoever starts it: the web
/// project hosts the dashboard but does not reference the job classes (nor, through them, training and evaluation).
/// </summary>
public static class WebHostJobs
{
    /// <summary>Hangfire's client and storage (the dashboard, enqueueing), the job classes' services and their settings; no worker.</summary>
    public static void Dashboard(IServiceCollection services, IConfiguration configuration, string connectionString)
    {
        services.AddSettings<JobsOptions>(configuration);
        services.AddRsCapRetJobs(connectionString);
    }

    /// <summary>As <see cref="Dashboard"/>, and a worker on every queue in the host's process (serve --with-worker).</summary>
    public static void DashboardAndWorker(IServiceCollection services, IConfiguration configuration, string connectionString)
    {
        Dashboard(services, configuration, connectionString);
        services.AddRsCapRetWorker(JobQueues.All, 1);
    }
}

using Microsoft.AspNetCore.Http;
using RsCapRet.Core;

namespace RsCapRet.Web;

/// <summary>
/// Bad input is a 400 problem (<see cref="ApiProblem"/>) for every endpoint it is added to, so handlers parse without
/// try/catch: a <see cref="FormatException"/> — the parsers' way of refusing a parameter (SearchQuery, ChangeQuery,
/// HeatmapQuery, LandUseQuery...), and a query over the model-work limits (ModelWorkLimitException is one) — and an
/// <see cref="ArgumentException"/> whose parameter is one of the request's (a route value or query parameter of that
/// name, as MapTileAddress.Checked names z, x and y). Any other ArgumentException is a fault of the server and stays
/// a 500 that names no internals.
/// </summary>
public sealed class BadInputFilter : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try
        {
            return await next(context);
        }
        catch (Exception e) when (IsBadInput(e, context.HttpContext.Request) && !context.HttpContext.Response.HasStarted)
        {
            return ApiProblem.BadRequest(ErrorMessages.OneLine(e));
        }
    }

    public static bool IsBadInput(Exception e, HttpRequest request) => e switch
    {
        FormatException => true,
        ArgumentException { ParamName: { Length: > 0 } name } => request.RouteValues.ContainsKey(name) || request.Query.ContainsKey(name),
        _ => false,
    };
}

//! Daily ticket-volume forecasts: MSTL decomposition with a weekly season and an AutoETS model
//! of the trend (augurs), with prediction intervals. No I/O.

use augurs_core::{Fit, Predict};
use augurs_ets::AutoETS;
use augurs_mstl::MSTLModel;

/// Shortest history a forecast is made from: two weekly seasons.
pub const MIN_HISTORY: usize = 14;

/// What the model is, as reported to clients.
pub const MODEL: &str = "MSTL (weekly season) with an AutoETS trend, on log(1 + tickets)";

/// Forecast values for the next days, never negative.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicted {
    pub point: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
}

/// Forecasts `horizon` days after `history` (one value per day, oldest first) with intervals
/// at `level` (0..1).
pub fn daily(history: &[f64], horizon: usize, level: f64) -> Result<Predicted, String> {
    if history.len() < MIN_HISTORY {
        return Err(format!("needs at least {MIN_HISTORY} days of history"));
    }
    // Ticket volume grows with its weekly swing (busy weekdays scale with the level), so the
    // additive decomposition runs on log(1 + y); bounds map back monotonically.
    let logged: Vec<f64> = history.iter().map(|y| y.max(0.0).ln_1p()).collect();
    let model = MSTLModel::new(vec![7], AutoETS::non_seasonal().into_trend_model());
    let fitted = model.fit(&logged).map_err(|e| e.to_string())?;
    let forecast = fitted.predict(horizon, level).map_err(|e| e.to_string())?;
    let clamp = |v: Vec<f64>| -> Vec<f64> {
        v.into_iter()
            .map(|x| {
                if x.is_finite() {
                    x.exp_m1().max(0.0)
                } else {
                    0.0
                }
            })
            .collect()
    };
    let (lower, upper) = match forecast.intervals {
        Some(i) => (clamp(i.lower), clamp(i.upper)),
        None => return Err("the model gave no prediction intervals".into()),
    };
    Ok(Predicted {
        point: clamp(forecast.point),
        lower,
        upper,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weekly seasonality (quiet weekends), an upward trend and deterministic noise.
    fn series(days: usize) -> Vec<f64> {
        let weekly = [1.3, 1.2, 1.1, 1.0, 0.9, 0.4, 0.3];
        let mut seed: u64 = 42;
        (0..days)
            .map(|d| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = ((seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 4.0;
                (20.0 + 0.25 * d as f64) * weekly[d % 7] + noise
            })
            .collect()
    }

    fn mape(actual: &[f64], predicted: &[f64]) -> f64 {
        actual
            .iter()
            .zip(predicted)
            .map(|(a, p)| ((a - p) / a).abs())
            .sum::<f64>()
            / actual.len() as f64
            * 100.0
    }

    #[test]
    fn beats_last_week_and_its_intervals_hold_the_truth() {
        let all = series(120);
        let (train, held_out) = all.split_at(106);
        let predicted = daily(train, 14, 0.95).unwrap();
        let naive: Vec<f64> = (0..14).map(|i| train[train.len() - 7 + i % 7]).collect();
        let model_mape = mape(held_out, &predicted.point);
        let naive_mape = mape(held_out, &naive);
        assert!(
            model_mape < naive_mape,
            "model MAPE {model_mape:.1}% vs last week {naive_mape:.1}%"
        );
        let inside = held_out
            .iter()
            .zip(predicted.lower.iter().zip(&predicted.upper))
            .filter(|(a, (lo, hi))| *lo <= *a && *a <= *hi)
            .count();
        assert!(
            inside >= 12,
            "{inside} of 14 held-out days inside the 95% interval"
        );
    }

    #[test]
    fn short_histories_are_refused() {
        assert!(daily(&[1.0; 13], 7, 0.95).is_err());
        let flat = daily(&[0.0; 28], 7, 0.95).unwrap();
        assert!(flat.point.iter().all(|v| *v >= 0.0));
    }
}

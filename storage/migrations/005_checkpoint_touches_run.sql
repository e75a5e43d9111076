-- crewline schema version 5: recording a checkpoint marks its run as touched.
--
-- A run step's checkpoint is one INSERT statement (one trip to the database thread, committed
-- on its own); the run's updated_at used to be a second statement in the same transaction.
CREATE TRIGGER checkpoints_touch_run AFTER INSERT ON checkpoints
BEGIN
    UPDATE runs SET updated_at = NEW.recorded_at WHERE id = NEW.run_id;
END;
